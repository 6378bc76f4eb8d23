// expect: HAPND003 unsafe
// why: an unsafe block writes through a pointer past a local, corrupting the worker's stack
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class UnsafeBlockReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        unsafe
        {
            var x = 5;
            var p = &x;
            *(p + 1000) = 0;
            s = s with { Count = *p };
        }
        return s with { Count = s.Count + 1 };
    }
}
