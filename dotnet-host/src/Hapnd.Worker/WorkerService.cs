using System.Text.Json;
using Hapnd.Projections.Contracts;
using Hapnd.Protocol;

namespace Hapnd.Worker;

/// <summary>
/// The worker's requests (protocol version <see cref="Frames.Version"/>), the C# side of
/// <c>server/src/runtime/protocol.rs</c>:
/// <list type="bullet">
/// <item><c>{"cmd":"load","dll":"base64","signature":"base64","className","kind":"reducer|projection"}</c> →
/// <c>{"artifact":"sha256 hex","kind","stateType"}</c>; the signature is checked first, and a refused one loads nothing.</item>
/// <item><c>{"cmd":"apply","state":JSON|null,"event":{...}}</c> → <c>{"state":JSON}</c>.</item>
/// <item><c>{"cmd":"resolveKey","event":{...}}</c> → <c>{"key":"..."|null}</c> (projections).</item>
/// <item><c>{"cmd":"applyBatch","states":{"key":JSON|null},"events":[ROW...]}</c> → <c>{"states":{"key":JSON},"timingsUs":{...}}</c>:
/// the events in order, each folded into its key's state, states kept as objects between events and written once.
/// A row is <c>[key, eventId, aggregateId, aggregateType, eventType, version, globalPosition, timestampMicros, data,
/// metadata, correlationId, causationId]</c>.</item>
/// <item><c>{"cmd":"resolveKeys","events":[ROW...]}</c> → <c>{"keys":["..."|null]}</c> (the rows' keys are ignored).</item>
/// </list>
/// <c>timingsUs</c> says where a batch's time went in the worker: <c>read</c> (the request), <c>apply</c> (user code),
/// <c>write</c>, and before it <c>waitBefore</c> (waiting for the request) and <c>transfer</c> (receiving it).
/// Error kinds: <c>userException</c> (detail: exceptionType, eventIndex), <c>outOfMemory</c>, <c>badSignature</c>,
/// <c>badArtifact</c>, <c>notLoaded</c>, <c>badRequest</c>.
/// </summary>
internal sealed class WorkerService(ArtifactVerifier verifier)
{
    private LoadedArtifact? _artifact;

    public void Handle(Frames frames, ReadOnlyMemory<byte> frame)
    {
        // When the request was taken up, for a batch's time breakdown.
        var received = System.Diagnostics.Stopwatch.GetTimestamp();
        ulong id = 0;
        try
        {
            var request = BatchBody.Read(frame, out id);
            var command = request.Command;
            if (command is not ("load" or "apply" or "resolveKey" or "applyBatch" or "resolveKeys"))
            {
                frames.SendError(id, "badRequest", $"unknown command '{command}'");
                return;
            }
            if (command != "load" && _artifact is null)
            {
                frames.SendError(id, "notLoaded", "no artifact is loaded: send load first");
                return;
            }
            if (BatchBody.Commands.Contains(command))
            {
                RunBatch(frames, id, request, _artifact!, received);
                return;
            }
            using var document = JsonDocument.Parse(request.Body);
            if (command == "load")
            {
                Load(frames, id, document.RootElement);
            }
            else
            {
                Run(frames, id, command, document.RootElement, _artifact!);
            }
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException
            or FormatException)
        {
            frames.SendError(id, "badRequest", $"the request cannot be read: {error.Message}");
        }
    }

    private void Load(Frames frames, ulong id, JsonElement body)
    {
        var dll = body.GetProperty("dll").GetBytesFromBase64();
        var signature = body.GetProperty("signature").GetBytesFromBase64();
        var className = body.GetProperty("className").GetString() ?? "";
        var kind = body.GetProperty("kind").GetString() ?? "";
        if (!verifier.Verify(dll, signature))
        {
            frames.SendError(id, "badSignature", "the artifact's signature does not verify: it was not signed by this server, or it was changed");
            return;
        }
        LoadedArtifact loaded;
        try
        {
            loaded = LoadedArtifact.Load(dll, className, kind);
        }
        catch (ArtifactException error)
        {
            frames.SendError(id, "badArtifact", error.Message);
            return;
        }
        catch (Exception error)
        {
            SendUserError(frames, id, error, eventIndex: null);
            return;
        }
        _artifact?.Unload();
        _artifact = loaded;
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteString("artifact", loaded.Id);
        writer.WriteString("kind", loaded.Kind);
        writer.WriteString("stateType", loaded.StateType.FullName);
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private static void Run(Frames frames, ulong id, string command, JsonElement body, LoadedArtifact artifact)
    {
        // Everything is read before user code runs, so a malformed request never looks like a user error.
        int? eventIndex = null;
        try
        {
            switch (command)
            {
                case "apply":
                {
                    var state = StateText(body.GetProperty("state"));
                    var @event = EventJson.Read(body.GetProperty("event"));
                    eventIndex = 0;
                    var next = artifact.Reducer is { } reducer
                        ? reducer.ApplyJson(state, @event)
                        : artifact.Projection!.ApplyJson(state, @event);
                    var writer = frames.StartOk(id);
                    writer.WriteStartObject();
                    writer.WritePropertyName("state");
                    writer.WriteRawValue(next, skipInputValidation: true);
                    writer.WriteEndObject();
                    frames.EndOk(writer);
                    return;
                }
                case "resolveKey":
                {
                    var projection = ProjectionOf(artifact);
                    var @event = EventJson.Read(body.GetProperty("event"));
                    eventIndex = 0;
                    var key = projection.ResolveKey(@event);
                    var writer = frames.StartOk(id);
                    writer.WriteStartObject();
                    writer.WriteString("key", key);
                    writer.WriteEndObject();
                    frames.EndOk(writer);
                    return;
                }
            }
        }
        catch (Exception error) when (eventIndex is not null && error is not ProtocolException)
        {
            SendUserError(frames, id, error, eventIndex);
        }
    }

    private static void RunBatch(Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, long received)
    {
        int? eventIndex = null;
        try
        {
            if (batch.Command == "resolveKeys")
            {
                ResolveKeys(frames, id, batch, artifact, ref eventIndex);
            }
            else
            {
                ApplyBatch(frames, id, batch, artifact, received, ref eventIndex);
            }
        }
        catch (Exception error) when (eventIndex is not null && error is not ProtocolException)
        {
            SendUserError(frames, id, error, eventIndex);
        }
    }

    private static void ResolveKeys(Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, ref int? eventIndex)
    {
        var projection = ProjectionOf(artifact);
        var keys = new string?[batch.Rows.Count];
        for (var i = 0; i < keys.Length; i++)
        {
            eventIndex = i;
            keys[i] = projection.ResolveKey(batch.Rows[i].Event);
        }
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteStartArray("keys");
        foreach (var key in keys)
        {
            writer.WriteStringValue(key);
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private static void ApplyBatch(
        Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, long received, ref int? eventIndex)
    {
        var given = batch.States;
        var steps = batch.Rows;
        var parsed = System.Diagnostics.Stopwatch.GetTimestamp();
        Func<string?, object?> deserialize = artifact.Reducer is { } r ? r.DeserializeState : artifact.Projection!.DeserializeState;
        Func<object?, Event, object?> apply = artifact.Reducer is { } r2 ? r2.ApplyBoxed : artifact.Projection!.ApplyBoxed;
        Func<object?, string> serialize = artifact.Reducer is { } r3 ? r3.SerializeState : artifact.Projection!.SerializeState;

        // Each key's state and the last event that changed it (the event a failure to write it is reported at),
        // in the order the keys first appear.
        var states = new Dictionary<string, (object? State, int LastEvent)>(StringComparer.Ordinal);
        var order = new List<string>();
        for (var i = 0; i < steps.Count; i++)
        {
            eventIndex = i;
            var (key, @event) = steps[i];
            if (!states.TryGetValue(key, out var current))
            {
                current = (deserialize(given.GetValueOrDefault(key)), i);
                order.Add(key);
            }
            states[key] = (apply(current.State, @event), i);
        }
        eventIndex = null;
        var applied = System.Diagnostics.Stopwatch.GetTimestamp();
        var serialized = new List<(string, string)>(order.Count);
        foreach (var key in order)
        {
            var (state, lastEvent) = states[key];
            eventIndex = lastEvent;
            serialized.Add((key, serialize(state)));
        }
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteStartObject("states");
        foreach (var (key, json) in serialized)
        {
            writer.WritePropertyName(key);
            writer.WriteRawValue(json, skipInputValidation: true);
        }
        writer.WriteEndObject();
        // Where the batch's time went inside the worker: reading the request, user code, writing the states.
        var done = System.Diagnostics.Stopwatch.GetTimestamp();
        writer.WriteStartObject("timingsUs");
        writer.WriteNumber("read", (long)System.Diagnostics.Stopwatch.GetElapsedTime(received, parsed).TotalMicroseconds);
        writer.WriteNumber("apply", (long)System.Diagnostics.Stopwatch.GetElapsedTime(parsed, applied).TotalMicroseconds);
        writer.WriteNumber("write", (long)System.Diagnostics.Stopwatch.GetElapsedTime(applied, done).TotalMicroseconds);
        writer.WriteNumber("waitBefore", (long)frames.LastWait.TotalMicroseconds);
        writer.WriteNumber("transfer", (long)frames.LastTransfer.TotalMicroseconds);
        writer.WriteEndObject();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private static IProjection ProjectionOf(LoadedArtifact artifact) =>
        artifact.Projection ?? throw new InvalidOperationException("the loaded artifact is a reducer: it has no keys");

    /// <summary>A state as JSON text for the contracts' bridges; JSON null is no state.</summary>
    private static string? StateText(JsonElement state) =>
        state.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : state.GetRawText();

    private static void SendUserError(Frames frames, ulong id, Exception error, int? eventIndex)
    {
        var unwrapped = error is TypeInitializationException { InnerException: { } inner } ? inner : error;
        var kind = unwrapped is OutOfMemoryException || error is OutOfMemoryException ? "outOfMemory" : "userException";
        var type = unwrapped.GetType().FullName ?? unwrapped.GetType().Name;
        frames.SendError(id, kind, $"{type}: {unwrapped.Message}", detail =>
        {
            detail.WriteString("exceptionType", type);
            if (eventIndex is { } index)
            {
                detail.WriteNumber("eventIndex", index);
            }
        });
    }
}
