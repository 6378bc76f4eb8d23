// expect: HAPND001 System.Threading.Tasks.Parallel
// why: Parallel.For fans work out over every core and makes results order-dependent
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ParallelForReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var sum = 0L;
        Parallel.For(0, 1_000_000, i => sum += i);
        s = s with { Count = (int)sum };
        return s with { Count = s.Count + 1 };
    }
}
