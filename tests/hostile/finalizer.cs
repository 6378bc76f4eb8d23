// expect: HAPND007 finalizer
// why: a finalizer runs on the GC's finalizer thread, outside the Apply deadline, and can resurrect itself forever
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public sealed class Haunt(string id)
{
    public static Haunt? Resurrected;

    public string Id { get; } = id;

    ~Haunt()
    {
        Resurrected = this;
        GC.ReRegisterForFinalize(this);
    }
}

public class FinalizerReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        _ = new Haunt(@event.AggregateId);
        return s with { Count = s.Count + 1 };
    }
}
