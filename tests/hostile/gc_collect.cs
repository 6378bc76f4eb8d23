// expect: HAPND001 System.GC
// why: forces blocking full garbage collections, stalling the worker for every tenant
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class GcCollectReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return s with { Count = s.Count + 1 };
    }
}
