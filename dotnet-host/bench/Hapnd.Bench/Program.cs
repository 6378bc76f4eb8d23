using System.Diagnostics;
using System.Runtime.Loader;
using System.Text.Json;
using Hapnd.Projections.Contracts;
using Hapnd.Protocol;

// Usage: Hapnd.Bench.dll ARTIFACT.dll CLASS EVENTS.json
// Loads the events (the HTTP API's event shape) and the reducer or projection, then speaks the executor's framed
// protocol on stdin/stdout: each request `{"cmd":"fold","rounds":N}` folds the events N times, each round a plain
// loop, and answers `{"eventsPerSecond":R,"state":JSON}` for the fastest round. A reducer folds every event into one
// state; a projection resolves each event's key and folds it into that key's state (a dictionary), and its `state`
// is the object of every key's state. Between requests it does nothing, so the benchmark can alternate rounds of
// this ceiling with rounds of the replay through the worker and both see the same machine.
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: Hapnd.Bench.dll ARTIFACT.dll CLASS EVENTS.json");
    return 2;
}
var context = new AssemblyLoadContext("bench", isCollectible: true);
var assembly = context.LoadFromAssemblyPath(Path.GetFullPath(args[0]));
var instance = Activator.CreateInstance(assembly.GetType(args[1], throwOnError: true)!)!;
using var document = JsonDocument.Parse(File.ReadAllBytes(args[2]));
var events = Load(document);

// A fresh copy of the events for each round: an event caches its parsed data (Event.Data), and a consumer parses
// each event once, so a round over events parsed by an earlier round would measure less than the real work.
static Event[] Load(JsonDocument document) => document.RootElement.EnumerateArray().Select(e => new Event
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

var frames = new Frames(Console.OpenStandardInput(), Console.OpenStandardOutput());
frames.SendHello();
while (frames.ReadFrame() is { } frame)
{
    using var request = Requests.Open(frame, out var id, out var body);
    var rounds = body.GetProperty("rounds").GetInt32();
    var best = double.MaxValue;
    var last = "";
    for (var round = 0; round < rounds; round++)
    {
        // A method per round: called again and again, it reaches the JIT's top tier (with its profile) like the
        // worker's batch loop does, instead of running as on-stack-replaced code of one long loop.
        if (round > 0)
        {
            events = Load(document);
        }
        var clock = Stopwatch.StartNew();
        last = instance is IProjection projection ? Project(projection, events) : Fold((IReducer)instance, events);
        best = Math.Min(best, clock.Elapsed.TotalSeconds);
    }
    var writer = frames.StartOk(id);
    writer.WriteStartObject();
    writer.WriteNumber("eventsPerSecond", events.Length / best);
    writer.WritePropertyName("state");
    writer.WriteRawValue(last);
    writer.WriteEndObject();
    frames.EndOk(writer);
}
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

static string Project(IProjection projection, Event[] events)
{
    var states = new Dictionary<string, object?>(StringComparer.Ordinal);
    foreach (var @event in events)
    {
        if (projection.ResolveKey(@event) is not { } key)
        {
            continue;
        }
        states[key] = projection.ApplyBoxed(states.GetValueOrDefault(key), @event);
    }
    var json = new System.Text.StringBuilder("{");
    foreach (var (key, state) in states.OrderBy(s => s.Key, StringComparer.Ordinal))
    {
        if (json.Length > 1)
        {
            json.Append(',');
        }
        json.Append(JsonSerializer.Serialize(key)).Append(':').Append(projection.SerializeState(state));
    }
    return json.Append('}').ToString();
}
