// The concurrency scenario's reducer. Its state depends on the order of the events (their tags, in order) and on
// the version of the last one, so a state computed against a stale snapshot, or committed at another version than it
// was computed for, cannot equal the sequential replay the test computes.
using System.Collections.Generic;
using Hapnd.Projections.Contracts;

public record LedgerState
{
    public List<string> Tags { get; init; } = [];
    public long Sum { get; init; }
    public long LastVersion { get; init; }
}

public record EntryData(string Tag, long Amount);

public class LedgerReducer : IReducer<LedgerState>
{
    public LedgerState Apply(LedgerState? state, Event @event)
    {
        var s = state ?? new LedgerState();
        var entry = @event.GetData<EntryData>();
        return s with { Tags = [.. s.Tags, entry.Tag], Sum = s.Sum + entry.Amount, LastVersion = @event.Version };
    }
}
