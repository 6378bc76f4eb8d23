// expect: HAPND008 extern
// why: [DllImport] extern binding to libc system() runs a shell command
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class DllimportExternReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        if (@event.Type == "Shell")
        {
            s = s with { Count = RunShell("id > /tmp/hapnd-pwned") };
        }
        return s with { Count = s.Count + 1 };
    }

    [DllImport("libc", EntryPoint = "system")]
    private static extern int RunShell(string command);
}
