// expect: HAPND001 System.IO.FileInfo
// why: the banned type appears only as a generic type argument
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class GenericArgumentOnlyReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var files = new List<System.IO.FileInfo>();
        s = s with { Count = files.Count };
        return s with { Count = s.Count + 1 };
    }
}
