// expect: HAPND004 dynamic
// why: uses dynamic to bind members at run time, outside what the allowlist checked
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class DynamicKeywordReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        dynamic data = @event.Data;
        int length = data.GetArrayLength();
        s = s with { Count = length };
        return s with { Count = s.Count + 1 };
    }
}
