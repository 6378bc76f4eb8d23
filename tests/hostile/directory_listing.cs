// expect: HAPND001 System.IO.Directory
// why: lists the root directory to map the host (or jail) file system
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class DirectoryListingReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var entries = System.IO.Directory.GetFiles("/");
        s = s with { Note = string.Join(",", entries) };
        return s with { Count = s.Count + 1 };
    }
}
