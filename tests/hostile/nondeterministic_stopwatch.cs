// expect: HAPND001 System.Diagnostics.Stopwatch
// why: Stopwatch measures elapsed time: state would depend on how fast the worker ran
using System;
using System.Collections.Generic;
using System.Linq;
using System.Diagnostics;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicStopwatchReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var sw = Stopwatch.StartNew();
        s = s with { Count = (int)sw.ElapsedTicks };
        return s with { Count = s.Count + 1 };
    }
}
