// expect: HAPND001 System.Random
// why: new Random(): different numbers on every replay
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NondeterministicRandomNewReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Count = new Random().Next() };
        return s with { Count = s.Count + 1 };
    }
}
