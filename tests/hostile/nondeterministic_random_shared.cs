// expect: HAPND001 System.Random
// why: Random.Shared: different numbers on every replay
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicRandomSharedReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = Random.Shared.Next(100) };
        return s with { Count = s.Count + 1 };
    }
}
