// expect: HAPND001 System.Threading.Thread
// why: starts a background thread that keeps running after Apply returns
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ThreadNewReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var t = new Thread(() =>
        {
            var x = 0L;
            while (true)
            {
                x++;
            }
        }) { IsBackground = true };
        t.Start();
        return s with { Count = s.Count + 1 };
    }
}
