// expect: HAPND005 System.Runtime.CompilerServices
// why: declares IgnoresAccessChecksToAttribute itself and applies it, so the runtime lets this assembly call CoreLib internals
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("System.Private.CoreLib")]

namespace System.Runtime.CompilerServices
{
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    public sealed class IgnoresAccessChecksToAttribute(string assemblyName) : Attribute
    {
        public string AssemblyName { get; } = assemblyName;
    }
}

public record AttackState(int Count, string Note);

public class IgnoresAccessChecksReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1 };
    }
}
