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
/// <item>A replay session keeps the keyed states in the worker from one batch to the next, so the supervisor can
/// send the next batch before the current one is answered (nothing it needs comes back in between):
/// <c>{"cmd":"replayBegin","states":{"key":JSON|null}}</c> → <c>{}</c> opens it (replacing any open one);
/// <c>{"cmd":"applyBatch","session":true,"events":[ROW...]}</c> → <c>{"keys":N,"timingsUs":{...}}</c> folds a batch
/// into it (no <c>states</c>: they were given at the start); <c>{"cmd":"replayEnd"}</c> →
/// <c>{"states":{"key":JSON},"timingsUs":{"write"}}</c> closes it with the final state of every key its events
/// touched, as one <c>applyBatch</c> of all of them would. A session's <c>eventIndex</c> counts from its first
/// event. Any error answer (and a <c>load</c>) ends the open session, so the batches sent behind a failed one are
/// answered <c>noSession</c>.</item>
/// </list>
/// <c>timingsUs</c> says where a batch's time went in the worker: <c>read</c> (the request), <c>apply</c> (user code),
/// <c>write</c>, and before it <c>waitBefore</c> (waiting for the request), <c>transfer</c> (receiving it),
/// <c>sendBefore</c> (writing the answer before it) and <c>gapBefore</c> (between that write and this read).
/// The projection session commands (<c>projectBegin</c>, <c>projectBatch</c>, <c>projectResume</c>,
/// <c>projectFlush</c>, <c>projectEnd</c>) are documented in <c>WorkerService.Projections.cs</c>.
/// Error kinds: <c>userException</c> (detail: exceptionType, eventIndex), <c>outOfMemory</c>, <c>badSignature</c>,
/// <c>badArtifact</c>, <c>notLoaded</c>, <c>noSession</c>, <c>badRequest</c>.
/// </summary>
internal sealed partial class WorkerService(ArtifactVerifier verifier)
{
    private static readonly HashSet<string> Known =
        ["load", "apply", "resolveKey", "applyBatch", "resolveKeys", "replayBegin", "replayEnd", "projectBegin", "projectBatch",
            "projectResume", "projectFlush", "projectEnd"];

    private LoadedArtifact? _artifact;

    /// <summary>The open replay session's states, if one is open.</summary>
    private KeyedStates? _session;

    public void Handle(Frames frames, ReadOnlyMemory<byte> frame)
    {
        // When the request was taken up, for a batch's time breakdown.
        var received = System.Diagnostics.Stopwatch.GetTimestamp();
        ulong id = 0;
        try
        {
            var request = BatchBody.Read(frame, out id);
            var command = request.Command;
            if (command is null || !Known.Contains(command))
            {
                SendError(frames, id, "badRequest", $"unknown command '{command}'");
                return;
            }
            if (command != "load" && _artifact is null)
            {
                SendError(frames, id, "notLoaded", "no artifact is loaded: send load first");
                return;
            }
            if (ProjectionCommands.Contains(command))
            {
                RunProjection(frames, id, request, _artifact!, received);
                return;
            }
            if (BatchBody.Commands.Contains(command))
            {
                RunBatch(frames, id, request, _artifact!, received);
                return;
            }
            if (command is "replayBegin" or "replayEnd")
            {
                RunSession(frames, id, request, _artifact!);
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
            SendError(frames, id, "badRequest", $"the request cannot be read: {error.Message}");
        }
    }

    private void Load(Frames frames, ulong id, JsonElement body)
    {
        var dll = body.GetProperty("dll").GetBytesFromBase64();
        var signature = body.GetProperty("signature").GetBytesFromBase64();
        var className = body.GetProperty("className").GetString() ?? "";
        var kind = body.GetProperty("kind").GetString() ?? "";
        _session = null;
        _projection = null;
        if (!verifier.Verify(dll, signature))
        {
            SendError(frames, id, "badSignature", "the artifact's signature does not verify: it was not signed by this server, or it was changed");
            return;
        }
        LoadedArtifact loaded;
        try
        {
            loaded = LoadedArtifact.Load(dll, className, kind);
        }
        catch (ArtifactException error)
        {
            SendError(frames, id, "badArtifact", error.Message);
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

    private void Run(Frames frames, ulong id, string command, JsonElement body, LoadedArtifact artifact)
    {
        // Everything is read before user code runs, so a malformed request never looks like a user error.
        long? eventIndex = null;
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

    private void RunBatch(Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, long received)
    {
        long? eventIndex = null;
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

    private static void ResolveKeys(Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, ref long? eventIndex)
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

    private void ApplyBatch(
        Frames frames, ulong id, BatchBody batch, LoadedArtifact artifact, long received, ref long? eventIndex)
    {
        var parsed = System.Diagnostics.Stopwatch.GetTimestamp();
        KeyedStates states;
        if (batch.Session)
        {
            if (_session is null)
            {
                SendError(frames, id, "noSession", "no replay session is open: send replayBegin first (an error ends a session)");
                return;
            }
            if (batch.States.Count > 0)
            {
                SendError(frames, id, "badRequest", "a session's states are given at replayBegin, not with its batches");
                return;
            }
            states = _session;
        }
        else
        {
            states = new KeyedStates(OpsOf(artifact), batch.States);
        }
        states.Fold(batch.Rows, ref eventIndex);
        var applied = System.Diagnostics.Stopwatch.GetTimestamp();
        var serialized = batch.Session ? null : states.Serialize(ref eventIndex);
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        if (serialized is null)
        {
            writer.WriteNumber("keys", states.Count);
        }
        else
        {
            writer.WritePropertyName("states");
            KeyedStates.Write(writer, serialized);
        }
        // Where the batch's time went inside the worker: reading the request, user code, writing the states.
        var done = System.Diagnostics.Stopwatch.GetTimestamp();
        writer.WriteStartObject("timingsUs");
        writer.WriteNumber("read", Micros(received, parsed));
        writer.WriteNumber("apply", Micros(parsed, applied));
        writer.WriteNumber("write", Micros(applied, done));
        writer.WriteNumber("waitBefore", (long)frames.LastWait.TotalMicroseconds);
        writer.WriteNumber("transfer", (long)frames.LastTransfer.TotalMicroseconds);
        writer.WriteNumber("sendBefore", (long)frames.LastSend.TotalMicroseconds);
        writer.WriteNumber("gapBefore", (long)frames.LastGap.TotalMicroseconds);
        writer.WriteEndObject();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private void RunSession(Frames frames, ulong id, BatchBody request, LoadedArtifact artifact)
    {
        if (request.Command == "replayBegin")
        {
            _session = new KeyedStates(OpsOf(artifact), new Dictionary<string, string?>(request.States, StringComparer.Ordinal));
            var begun = frames.StartOk(id);
            begun.WriteStartObject();
            begun.WriteEndObject();
            frames.EndOk(begun);
            return;
        }
        if (_session is not { } session)
        {
            SendError(frames, id, "noSession", "no replay session is open: send replayBegin first (an error ends a session)");
            return;
        }
        _session = null;
        long? eventIndex = null;
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var serialized = session.Serialize(ref eventIndex);
            var writer = frames.StartOk(id);
            writer.WriteStartObject();
            writer.WritePropertyName("states");
            KeyedStates.Write(writer, serialized);
            writer.WriteStartObject("timingsUs");
            writer.WriteNumber("write", Micros(started, System.Diagnostics.Stopwatch.GetTimestamp()));
            writer.WriteEndObject();
            writer.WriteEndObject();
            frames.EndOk(writer);
        }
        catch (Exception error) when (eventIndex is not null && error is not ProtocolException)
        {
            SendUserError(frames, id, error, eventIndex);
        }
    }

    private static StateOps OpsOf(LoadedArtifact artifact) =>
        artifact.Reducer is { } reducer ? StateOps.Of(reducer) : StateOps.Of(artifact.Projection!);

    private static long Micros(long from, long to) =>
        (long)System.Diagnostics.Stopwatch.GetElapsedTime(from, to).TotalMicroseconds;

    private static IProjection ProjectionOf(LoadedArtifact artifact) =>
        artifact.Projection ?? throw new InvalidOperationException("the loaded artifact is a reducer: it has no keys");

    /// <summary>A state as JSON text for the contracts' bridges; JSON null is no state.</summary>
    private static string? StateText(JsonElement state) =>
        state.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : state.GetRawText();

    private void SendUserError(Frames frames, ulong id, Exception error, long? eventIndex)
    {
        var unwrapped = error is TypeInitializationException { InnerException: { } inner } ? inner : error;
        var kind = unwrapped is OutOfMemoryException || error is OutOfMemoryException ? "outOfMemory" : "userException";
        var type = unwrapped.GetType().FullName ?? unwrapped.GetType().Name;
        SendError(frames, id, kind, $"{type}: {unwrapped.Message}", detail =>
        {
            detail.WriteString("exceptionType", type);
            if (eventIndex is { } index)
            {
                detail.WriteNumber("eventIndex", index);
            }
        });
    }

    /// <summary>Every error answer goes through here: it ends the open session, if any.</summary>
    private void SendError(Frames frames, ulong id, string kind, string message, Action<Utf8JsonWriter>? detail = null)
    {
        _session = null;
        _projection = null;
        frames.SendError(id, kind, message, detail);
    }
}
