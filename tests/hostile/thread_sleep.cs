// expect: HAPND001 System.Threading.Thread
// why: Thread.Sleep stalls the worker (and hides work from CPU-time accounting)
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ThreadSleepReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Thread.Sleep(TimeSpan.FromHours(1));
        return s with { Count = s.Count + 1 };
    }
}
