// expect: HAPND001 System.Console
// why: writes to the worker's stdout, which may be the host's protocol channel
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class ConsoleWritelineReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        Console.WriteLine("leak: " + @event.Data.ToString());
        return s with { Count = s.Count + 1 };
    }
}
