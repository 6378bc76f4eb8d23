// expect: HAPND011 BeginInvoke
// why: a user delegate's BeginInvoke runs it asynchronously on another thread
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public delegate int Work(int x);

public class DelegateBegininvokeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Work work = x => x * 2;
        var pending = work.BeginInvoke(21, null, null);
        s = s with { Count = work.EndInvoke(pending) };
        return s with { Count = s.Count + 1 };
    }
}
