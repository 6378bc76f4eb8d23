// Exercises what a jailed worker needs: JIT-compiled code (a generic method and a lambda), threads that run in
// parallel, and garbage collection. Prints one line the test checks.
var sums = new long[4];
var threads = Enumerable.Range(0, sums.Length)
    .Select(i => new Thread(() => sums[i] = Enumerable.Range(0, 100_000).Select(n => (long)n * (i + 1)).Sum()))
    .ToList();
threads.ForEach(t => t.Start());
threads.ForEach(t => t.Join());
GC.Collect();
Console.WriteLine($"hello from .NET {Environment.Version}: {string.Join(",", sums)} w^x={Environment.GetEnvironmentVariable("DOTNET_EnableWriteXorExecute") ?? "default"}");
