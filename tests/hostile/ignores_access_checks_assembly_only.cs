// expect: HAPND006 assembly
// why: an [assembly:] attribute (IgnoresAccessChecksTo CoreLib) changes how the runtime treats the whole assembly
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("System.Private.CoreLib")]

public record AttackState(int Count, string Note);

public class IgnoresAccessChecksAssemblyOnlyReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1 };
    }
}
