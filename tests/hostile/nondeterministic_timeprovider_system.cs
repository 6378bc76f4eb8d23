// expect: HAPND001 System.TimeProvider
// why: TimeProvider.System reads the wall clock
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicTimeproviderSystemReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = TimeProvider.System.GetUtcNow().ToString("O") };
        return s with { Count = s.Count + 1 };
    }
}
