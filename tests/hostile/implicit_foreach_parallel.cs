// expect: HAPND001 System.Linq.ParallelEnumerable
// why: foreach over AsParallel(): a PLINQ query runs on pool threads and yields in a non-deterministic order, with no banned type written
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ImplicitForeachParallelReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var numbers = Enumerable.Range(1, 1000).ToList();
        var order = new List<int>();
        foreach (var doubled in numbers.AsParallel().Select(n => n * 2))
        {
            order.Add(doubled);
        }

        s = s with { Note = string.Join(",", order.Take(5)) };
        return s with { Count = s.Count + 1 };
    }
}
