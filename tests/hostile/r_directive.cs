// expect: HAPND010 #r
// why: a script-style #r directive tries to pull an extra assembly reference into the compilation
#r "System.IO.dll"
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class RDirectiveReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1 };
    }
}
