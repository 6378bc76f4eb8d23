// expect: HAPND009 __refvalue
// why: __refvalue reads (and writes) through a TypedReference
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class RefvalueReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var x = 5;
        var tr = __makeref(x);
        __refvalue(tr, int) = 7;
        s = s with { Count = x };
        return s with { Count = s.Count + 1 };
    }
}
