// expect: HAPND001 System.String.GetHashCode
// why: string.GetHashCode() is randomized per process
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicStringGethashcodeReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = @event.AggregateId.GetHashCode() };
        return s with { Count = s.Count + 1 };
    }
}
