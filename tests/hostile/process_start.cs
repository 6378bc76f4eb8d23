// expect: HAPND001 System.Diagnostics.Process
// why: spawns a shell on the host
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ProcessStartReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using var p = System.Diagnostics.Process.Start("/bin/sh", "-c \"id > /tmp/hapnd-pwned\"");
        p?.WaitForExit();
        return s with { Count = s.Count + 1 };
    }
}
