// expect: HAPND001 System.IO.Stream
// why: a using statement over a value from a helper: the Stream type reached through using/Dispose
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ImplicitUsingStreamReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using (var stream = GetStream())
        {
            s = s with { Count = stream.CanRead ? 1 : 0 };
        }
        return s with { Count = s.Count + 1 };
    }

    private static System.IO.Stream GetStream() => System.IO.Stream.Null;
}
