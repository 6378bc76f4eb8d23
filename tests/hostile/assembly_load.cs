// expect: HAPND001 System.Reflection.Assembly
// why: loads an assembly by name to reach types the allowlist never sees in source
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class AssemblyLoadReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var asm = System.Reflection.Assembly.Load("System.Net.Http");
        s = s with { Note = asm.FullName ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
