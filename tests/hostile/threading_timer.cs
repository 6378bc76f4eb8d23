// expect: HAPND001 System.Threading.Timer
// why: a Timer callback keeps firing on pool threads after Apply returns
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ThreadingTimerReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        _ = new System.Threading.Timer(_ => Leaked++, null, 0, 1);
        s = s with { Count = Leaked };
        return s with { Count = s.Count + 1 };
    }

    private static int Leaked;
}
