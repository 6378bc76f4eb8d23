using Hapnd.Protocol;

namespace Hapnd.Worker;

/// <summary>
/// The projection session commands (see <see cref="ProjectionSession"/>):
/// <list type="bullet">
/// <item><c>{"cmd":"projectBegin","fresh":bool}</c> → <c>{}</c> opens a session, replacing any open one.</item>
/// <item><c>{"cmd":"projectBatch","record":bool,"events":[ROW...]}</c> (the rows' keys are ignored: the projection
/// resolves them) → <c>{"need":["key"...]}</c> when states must be given first (the batch then waits for
/// <c>projectResume</c>), else the outcome <c>{"applied":N,"skipped":M,"resident":R}</c>, with
/// <c>"changes":[[position,"key",STATE]...]</c> (every state change, in order) when <c>record</c>, and
/// <c>"timingsUs":{"read","resolve","apply","waitBefore","transfer"}</c>.</item>
/// <item><c>{"cmd":"projectResume","states":{"key":JSON|null}}</c> → the waiting batch's outcome.</item>
/// <item><c>{"cmd":"projectFlush","keep":K}</c> → <c>{"states":{"key":JSON},"resident":R}</c>: every state changed
/// since the last flush; then, when more than K are resident, they are all let go.</item>
/// <item><c>{"cmd":"projectEnd"}</c> → <c>{}</c> closes the session.</item>
/// </list>
/// A user exception's <c>eventIndex</c> counts the session's rows from its first. Any error answer ends the session.
/// </summary>
internal sealed partial class WorkerService
{
    private static readonly HashSet<string> ProjectionCommands =
        ["projectBegin", "projectBatch", "projectResume", "projectFlush", "projectEnd"];

    private ProjectionSession? _projection;

    private void RunProjection(Frames frames, ulong id, BatchBody request, LoadedArtifact artifact, long received)
    {
        var parsed = System.Diagnostics.Stopwatch.GetTimestamp();
        long? eventIndex = null;
        try
        {
            switch (request.Command)
            {
                case "projectBegin":
                {
                    var projection = ProjectionOf(artifact);
                    _projection = new ProjectionSession(projection, StateOps.Of(projection), request.Fresh);
                    WriteEmpty(frames, id);
                    return;
                }
                case "projectEnd":
                    _projection = null;
                    WriteEmpty(frames, id);
                    return;
            }
            if (_projection is not { } session)
            {
                SendError(frames, id, "noSession", "no projection session is open: send projectBegin first (an error ends a session)");
                return;
            }
            switch (request.Command)
            {
                case "projectBatch":
                {
                    if (session.Suspended)
                    {
                        SendError(frames, id, "badRequest", "a batch is waiting for states: send projectResume first");
                        return;
                    }
                    var need = session.Run(request.Rows, request.Record, ref eventIndex, out var outcome);
                    if (need is not null)
                    {
                        var writer = frames.StartOk(id);
                        writer.WriteStartObject();
                        writer.WriteStartArray("need");
                        foreach (var key in need)
                        {
                            writer.WriteStringValue(key);
                        }
                        writer.WriteEndArray();
                        writer.WriteEndObject();
                        frames.EndOk(writer);
                        return;
                    }
                    WriteOutcome(frames, id, outcome!, session, Micros(received, parsed));
                    return;
                }
                case "projectResume":
                    WriteOutcome(frames, id, session.Resume(request.States, ref eventIndex), session, Micros(received, parsed));
                    return;
                case "projectFlush":
                {
                    var dirty = session.Flush(request.Keep, ref eventIndex);
                    var writer = frames.StartOk(id);
                    writer.WriteStartObject();
                    writer.WritePropertyName("states");
                    KeyedStates.Write(writer, dirty);
                    writer.WriteNumber("resident", session.Resident);
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

    private static void WriteOutcome(
        Frames frames, ulong id, ProjectionSession.Outcome outcome, ProjectionSession session, long readMicros)
    {
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteNumber("applied", outcome.Applied);
        writer.WriteNumber("skipped", outcome.Skipped);
        writer.WriteNumber("resident", session.Resident);
        if (outcome.Changes is { } changes)
        {
            writer.WriteStartArray("changes");
            foreach (var (position, key, state) in changes)
            {
                writer.WriteStartArray();
                writer.WriteNumberValue(position);
                writer.WriteStringValue(key);
                writer.WriteRawValue(state, skipInputValidation: true);
                writer.WriteEndArray();
            }
            writer.WriteEndArray();
        }
        // Where the batch's time went in the worker (as for applyBatch), ResolveKey and Apply apart.
        writer.WriteStartObject("timingsUs");
        writer.WriteNumber("read", readMicros);
        writer.WriteNumber("resolve", (long)System.Diagnostics.Stopwatch.GetElapsedTime(0, session.LastResolveTicks).TotalMicroseconds);
        writer.WriteNumber("apply", (long)System.Diagnostics.Stopwatch.GetElapsedTime(0, session.LastApplyTicks).TotalMicroseconds);
        writer.WriteNumber("waitBefore", (long)frames.LastWait.TotalMicroseconds);
        writer.WriteNumber("transfer", (long)frames.LastTransfer.TotalMicroseconds);
        writer.WriteEndObject();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }

    private static void WriteEmpty(Frames frames, ulong id)
    {
        var writer = frames.StartOk(id);
        writer.WriteStartObject();
        writer.WriteEndObject();
        frames.EndOk(writer);
    }
}
