// expect: HAPND001 System.IO.File
// why: the banned type appears only inside typeof(...)
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class TypeofOnlyReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        object marker = typeof(System.IO.File);
        s = s with { Note = marker is null ? "" : "seen" };
        return s with { Count = s.Count + 1 };
    }
}
