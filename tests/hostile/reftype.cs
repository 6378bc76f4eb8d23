// expect: HAPND009 __reftype
// why: __reftype pulls a System.Type out of a TypedReference without calling GetType
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ReftypeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var x = 5;
        var tr = __makeref(x);
        s = s with { Note = __reftype(tr).Name };
        return s with { Count = s.Count + 1 };
    }
}
