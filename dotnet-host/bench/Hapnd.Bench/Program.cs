using System.Diagnostics;
using System.Runtime.Loader;
using System.Text.Json;
using Hapnd.Projections.Contracts;

// Usage: Hapnd.Bench.dll ARTIFACT.dll CLASS EVENTS.json ROUNDS
// Folds the events (the HTTP API's event shape) through the reducer ROUNDS times in one process and prints
// `events_per_second=N state=JSON` for the fastest round.
if (args.Length != 4)
{
    Console.Error.WriteLine("usage: Hapnd.Bench.dll ARTIFACT.dll CLASS EVENTS.json ROUNDS");
    return 2;
}
var context = new AssemblyLoadContext("bench", isCollectible: true);
var assembly = context.LoadFromAssemblyPath(Path.GetFullPath(args[0]));
var reducer = (IReducer)Activator.CreateInstance(assembly.GetType(args[1], throwOnError: true)!)!;
using var document = JsonDocument.Parse(File.ReadAllBytes(args[2]));
var events = document.RootElement.EnumerateArray().Select(e => new Event
{
    EventId = e.GetProperty("eventId").GetGuid(),
    AggregateId = e.GetProperty("aggregateId").GetString()!,
    AggregateType = e.GetProperty("aggregateType").GetString()!,
    Type = e.GetProperty("eventType").GetString()!,
    Version = e.GetProperty("version").GetInt64(),
    GlobalPosition = e.GetProperty("globalPosition").GetInt64(),
    Timestamp = e.GetProperty("timestamp").GetDateTimeOffset(),
    Data = e.GetProperty("data"),
}).ToArray();
var rounds = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
var best = double.MaxValue;
string last = "";
for (var round = 0; round < rounds; round++)
{
    var clock = Stopwatch.StartNew();
    object? state = null;
    foreach (var @event in events)
    {
        state = reducer.ApplyBoxed(state, @event);
    }
    last = reducer.SerializeState(state);
    best = Math.Min(best, clock.Elapsed.TotalSeconds);
}
Console.WriteLine($"events_per_second={events.Length / best:F0} state={last}");
return 0;
