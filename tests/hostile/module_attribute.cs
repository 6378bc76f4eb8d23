// expect: HAPND006 module
// why: a [module:] attribute (SkipLocalsInit) changes code generation for the whole module, e.g. exposing uninitialised stack memory
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

[module: System.Runtime.CompilerServices.SkipLocalsInit]

public record AttackState(int Count, string Note);

public class ModuleAttributeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1 };
    }
}
