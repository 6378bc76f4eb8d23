// expect: HAPND001 System.Runtime.CompilerServices.UnsafeAccessorAttribute
// why: [UnsafeAccessor] reaches the private backing field of Event.Data and rewrites it, bypassing init-only
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class UnsafeAccessorReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        ref var data = ref DataField(@event);
        data = default;
        return s with { Count = s.Count + 1 };
    }

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "<Data>k__BackingField")]
    private static extern ref JsonElement DataField(Event e);
}
