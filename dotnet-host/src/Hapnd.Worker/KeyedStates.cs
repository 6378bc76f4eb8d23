using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>How a loaded reducer or projection reads, folds and writes its states, without reflection.</summary>
internal sealed record StateOps(
    Func<string?, object?> Deserialize,
    Func<object?, Event, object?> Apply,
    Func<object?, string> Serialize)
{
    public static StateOps Of(IReducer reducer) => new(reducer.DeserializeState, reducer.ApplyBoxed, reducer.SerializeState);

    public static StateOps Of(IProjection projection) =>
        new(projection.DeserializeState, projection.ApplyBoxed, projection.SerializeState);
}

/// <summary>
/// States by key, each kept as an object while events are folded into it and written as JSON once at the end: one
/// batch's (<c>applyBatch</c>), or a replay session's across its batches (<c>replayBegin</c> … <c>replayEnd</c>), so
/// a replay sends no state back and forth between batches. The states given at the start are JSON read when their
/// key is first touched; only touched keys are written, in the order they were first touched.
/// </summary>
internal sealed class KeyedStates(StateOps ops, IReadOnlyDictionary<string, string?> given)
{
    // Each key's state and the last event that changed it (the event a failure to write it is reported at).
    private readonly Dictionary<string, (object? State, long LastEvent)> _states = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    /// <summary>Events folded so far: the index of a failing event counts from the first one folded here.</summary>
    public long Folded { get; private set; }

    /// <summary>Keys touched so far.</summary>
    public int Count => _order.Count;

    /// <summary>
    /// Folds <paramref name="rows"/> in order. <paramref name="eventIndex"/> says which event user code is running
    /// (counted from the first event folded here), so an exception can be reported at it; the states of the events
    /// before it stay folded.
    /// </summary>
    public void Fold(List<(string Key, Event Event)> rows, ref long? eventIndex)
    {
        // The state being folded stays in locals while the rows keep its key (a reducer's replay is one key, and
        // the row scanner hands out one string for a repeated key), and goes back to the table when the key changes.
        string? key = null;
        object? state = null;
        var applied = false;
        var index = Folded;
        try
        {
            foreach (var (rowKey, @event) in rows)
            {
                eventIndex = index;
                if (!ReferenceEquals(rowKey, key) && !string.Equals(rowKey, key, StringComparison.Ordinal))
                {
                    if (applied)
                    {
                        _states[key!] = (state, index - 1);
                    }
                    key = rowKey;
                    applied = false;
                    if (_states.TryGetValue(key, out var current))
                    {
                        state = current.State;
                    }
                    else
                    {
                        state = ops.Deserialize(given.GetValueOrDefault(key));
                        _order.Add(key);
                        // Known from now on, even if its first event throws.
                        _states[key] = (state, index);
                    }
                }
                state = ops.Apply(state, @event);
                applied = true;
                index++;
            }
        }
        finally
        {
            if (applied)
            {
                _states[key!] = (state, index - 1);
            }
            Folded = index;
        }
        eventIndex = null;
    }

    /// <summary>
    /// Serializes every touched key's state, in the order the keys were first touched. This is user code (a state's
    /// serializer may throw, reported at the last event that changed it through <paramref name="eventIndex"/>), so
    /// it runs before anything of the answer is written.
    /// </summary>
    public List<(string Key, string Json)> Serialize(ref long? eventIndex)
    {
        var serialized = new List<(string, string)>(_order.Count);
        foreach (var key in _order)
        {
            var (state, lastEvent) = _states[key];
            eventIndex = lastEvent;
            serialized.Add((key, ops.Serialize(state)));
        }
        eventIndex = null;
        return serialized;
    }

    /// <summary>Writes serialized states as a JSON object, key → state.</summary>
    public static void Write(Utf8JsonWriter writer, List<(string Key, string Json)> serialized)
    {
        writer.WriteStartObject();
        foreach (var (key, json) in serialized)
        {
            writer.WritePropertyName(key);
            writer.WriteRawValue(json, skipInputValidation: true);
        }
        writer.WriteEndObject();
    }
}
