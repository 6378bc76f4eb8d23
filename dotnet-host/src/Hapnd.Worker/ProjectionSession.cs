using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// A projection version's states while it runs through the log (<c>projectBegin</c> … <c>projectEnd</c>): states
/// kept as objects between batches, each marked dirty when an event changes it, written as JSON only when the
/// supervisor flushes them (with its checkpoint) or records changes.
/// <para>
/// The supervisor owns the stored states. A key that is not resident is asked for (<c>need</c>) unless the session
/// is <em>fresh</em> (the version has nothing stored yet) and has never evicted a state: then a new key is a new
/// row. A batch waiting for its keys' states is suspended: every row's key is resolved first, so one round trip
/// brings every state the batch needs.
/// </para>
/// Event indexes count the rows of the session from its first one, skipped rows (no key) included, so the supervisor
/// maps an index to the log: it sends the log gapless, in order.
/// </summary>
internal sealed class ProjectionSession(IProjection projection, StateOps ops, bool fresh)
{
    private sealed class Entry(object? state)
    {
        public object? State = state;
        public bool Dirty;
        // The session row that last changed the state (a failure to write it is reported there).
        public long LastRow;
    }

    private readonly Dictionary<string, Entry> _resident = new(StringComparer.Ordinal);
    private bool _evicted;

    // The batch waiting for states, with its keys resolved.
    private List<(string Key, Event Event)>? _suspended;
    private string?[]? _suspendedKeys;
    private bool _suspendedRecord;

    /// <summary>Rows of the session so far, the suspended batch's included.</summary>
    public long Rows { get; private set; }

    public int Resident => _resident.Count;

    public bool Suspended => _suspended is not null;

    /// <summary>Stopwatch ticks the last batch spent in <c>ResolveKey</c> and in <c>Apply</c>.</summary>
    public long LastResolveTicks { get; private set; }

    public long LastApplyTicks { get; private set; }

    /// <summary>What running a batch gave.</summary>
    public sealed record Outcome(int Applied, int Skipped, List<(long Position, string Key, string State)>? Changes);

    /// <summary>
    /// Resolves every row's key, then applies the batch unless states must be asked for first: returns the keys
    /// to ask for (the batch is then suspended until <see cref="Resume"/>), or null and the outcome.
    /// </summary>
    public List<string>? Run(
        List<(string Key, Event Event)> rows, bool record, ref long? eventIndex, out Outcome? outcome)
    {
        var first = Rows;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var keys = new string?[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            eventIndex = first + i;
            keys[i] = projection.ResolveKey(rows[i].Event);
        }
        eventIndex = null;
        LastResolveTicks = System.Diagnostics.Stopwatch.GetTimestamp() - started;
        LastApplyTicks = 0;
        List<string>? need = null;
        HashSet<string>? asked = null;
        if (!fresh || _evicted)
        {
            foreach (var key in keys)
            {
                if (key is not null && !_resident.ContainsKey(key) && (asked ??= new(StringComparer.Ordinal)).Add(key))
                {
                    (need ??= []).Add(key);
                }
            }
        }
        if (need is not null)
        {
            _suspended = rows;
            _suspendedKeys = keys;
            _suspendedRecord = record;
            Rows = first + rows.Count;
            outcome = null;
            return need;
        }
        outcome = Apply(rows, keys, first, record, ref eventIndex);
        Rows = first + rows.Count;
        return null;
    }

    /// <summary>Applies the suspended batch with the states asked for (<c>null</c>: no stored state).</summary>
    /// <exception cref="InvalidOperationException">Nothing is suspended, or a state asked for is missing.</exception>
    public Outcome Resume(IReadOnlyDictionary<string, string?> given, ref long? eventIndex)
    {
        if (_suspended is not { } rows || _suspendedKeys is not { } keys)
        {
            throw new InvalidOperationException("no batch is waiting for states");
        }
        var first = Rows - rows.Count;
        foreach (var key in keys)
        {
            if (key is null || _resident.ContainsKey(key))
            {
                continue;
            }
            if (!given.TryGetValue(key, out var json))
            {
                throw new InvalidOperationException($"the state of key '{key}' was asked for and not given");
            }
            _resident[key] = new Entry(ops.Deserialize(json));
        }
        _suspended = null;
        _suspendedKeys = null;
        return Apply(rows, keys, first, _suspendedRecord, ref eventIndex);
    }

    private Outcome Apply(
        List<(string Key, Event Event)> rows, string?[] keys, long first, bool record, ref long? eventIndex)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var applied = 0;
        List<(long, string, string)>? changes = record ? [] : null;
        // The state being folded stays in a local while consecutive rows share a key.
        string? key = null;
        Entry? entry = null;
        for (var i = 0; i < rows.Count; i++)
        {
            var rowKey = keys[i];
            if (rowKey is null)
            {
                continue;
            }
            eventIndex = first + i;
            if (entry is null || !string.Equals(rowKey, key, StringComparison.Ordinal))
            {
                key = rowKey;
                if (!_resident.TryGetValue(key, out entry))
                {
                    entry = new Entry(ops.Deserialize(null));
                    _resident[key] = entry;
                }
            }
            var @event = rows[i].Event;
            entry.State = ops.Apply(entry.State, @event);
            entry.Dirty = true;
            entry.LastRow = first + i;
            applied++;
            changes?.Add((@event.GlobalPosition, rowKey, ops.Serialize(entry.State)));
        }
        eventIndex = null;
        LastApplyTicks = System.Diagnostics.Stopwatch.GetTimestamp() - started;
        return new Outcome(applied, rows.Count - applied, changes);
    }

    /// <summary>
    /// Writes every state changed since the last flush (user code: a serializer may throw, reported at the row that
    /// last changed the state), marks them clean, and then, when more than <paramref name="keep"/> are resident,
    /// lets them all go: they are stored, and asked for again when needed.
    /// </summary>
    public List<(string Key, string Json)> Flush(int keep, ref long? eventIndex)
    {
        var dirty = new List<(string, string)>();
        foreach (var (key, entry) in _resident)
        {
            if (entry.Dirty)
            {
                eventIndex = entry.LastRow;
                dirty.Add((key, ops.Serialize(entry.State)));
            }
        }
        eventIndex = null;
        foreach (var entry in _resident.Values)
        {
            entry.Dirty = false;
        }
        if (_resident.Count > keep)
        {
            _resident.Clear();
            _evicted = true;
        }
        return dirty;
    }
}
