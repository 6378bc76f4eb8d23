// expect: HAPND001 System.AppDomain
// why: enumerates every loaded assembly to find host internals to abuse
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class AppdomainAssembliesReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var names = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.FullName ?? "");
        s = s with { Note = string.Join(";", names) };
        return s with { Count = s.Count + 1 };
    }
}
