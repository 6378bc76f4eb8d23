// expect: HAPND010 #load
// why: a script-style #load directive tries to pull another source file from the host into the compilation
#load "x.csx"
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class LoadDirectiveReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1 };
    }
}
