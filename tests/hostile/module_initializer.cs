// expect: HAPND001 System.Runtime.CompilerServices.ModuleInitializerAttribute
// why: a module initializer runs code when the assembly loads, before and outside any Apply deadline
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

internal static class Boot
{
    public static string Marker = "";

    [ModuleInitializer]
    internal static void Init()
    {
        Marker = "ran at load";
    }
}

public class ModuleInitializerReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = Boot.Marker };
        return s with { Count = s.Count + 1 };
    }
}
