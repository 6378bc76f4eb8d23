// expect: HAPND001 System.HashCode
// why: HashCode.Combine uses a per-process random seed
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicHashcodeCombineReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = HashCode.Combine(@event.AggregateId, @event.Version) };
        return s with { Count = s.Count + 1 };
    }
}
