// expect: HAPND009 __arglist
// why: __arglist / ArgIterator: varargs calling convention and unchecked argument walking
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ArglistReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = CountArgs(__arglist(1, "two", 3.0)) };
        return s with { Count = s.Count + 1 };
    }

    private static int CountArgs(__arglist)
    {
        var it = new ArgIterator(__arglist);
        return it.GetRemainingCount();
    }
}
