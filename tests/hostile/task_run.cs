// expect: HAPND001 System.Threading.Tasks.Task
// why: Task.Run schedules work on the thread pool that outlives Apply
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class TaskRunReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Task.Run(() =>
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
