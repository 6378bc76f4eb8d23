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
    // As the worker gives it in a replay: UTF-8 bytes, read by GetData without a document.
    DataUtf8 = System.Text.Encoding.UTF8.GetBytes(e.GetProperty("data").GetRawText()),
}).ToArray();
var rounds = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
var best = double.MaxValue;
string last = "";
for (var round = 0; round < rounds; round++)
{
    // A method per round: called again and again, it reaches the JIT's top tier (with its profile) like the
    // worker's batch loop does, instead of running as on-stack-replaced code of one long loop.
    var clock = Stopwatch.StartNew();
    last = Fold(reducer, events);
    best = Math.Min(best, clock.Elapsed.TotalSeconds);
}
Console.WriteLine($"events_per_second={events.Length / best:F0} state={last}");
return 0;

static string Fold(IReducer reducer, Event[] events)
{
    object? state = null;
    foreach (var @event in events)
    {
        state = reducer.ApplyBoxed(state, @event);
    }
    return reducer.SerializeState(state);
}
