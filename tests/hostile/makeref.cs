// expect: HAPND009 __makeref
// why: __makeref builds a TypedReference to a local, a back door to untyped references
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class MakerefReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var x = 5;
        TypedReference tr = __makeref(x);
        s = s with { Count = __refvalue(tr, int) };
        return s with { Count = s.Count + 1 };
    }
}
