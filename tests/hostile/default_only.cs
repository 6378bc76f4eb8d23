// expect: HAPND001 System.IO.FileInfo
// why: the banned type appears only inside default(...)
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class DefaultOnlyReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var info = default(System.IO.FileInfo);
        s = s with { Note = info is null ? "none" : "some" };
        return s with { Count = s.Count + 1 };
    }
}
