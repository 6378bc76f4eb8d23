// expect: HAPND001 System.IO.File
// why: writes a file on the host, e.g. to plant something for a later process
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FileWriteReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        System.IO.File.WriteAllText("/tmp/hapnd-pwned", @event.AggregateId);
        return s with { Count = s.Count + 1 };
    }
}
