// expect: HAPND001 System.Activator
// why: instantiates a banned type from a name string with Activator.CreateInstance
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ReflectionActivatorReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var handle = Activator.CreateInstance("System.Net.Http", "System.Net.Http.HttpClient");
        var client = handle?.Unwrap();
        s = s with { Note = client?.ToString() ?? "" };
        return s with { Count = s.Count + 1 };
    }
}
