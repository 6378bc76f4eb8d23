// expect: HAPND001 System.Threading.ThreadPool
// why: queues a work item on the pool that runs outside the Apply deadline
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ThreadpoolQueueReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        ThreadPool.QueueUserWorkItem(_ =>
        {
            var x = 0L;
            while (true)
            {
                x++;
            }
        });
        return s with { Count = s.Count + 1 };
    }
}
