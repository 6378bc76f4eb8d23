// expect: HAPND001 System.IO.File
// why: tries to silence the gate with [SuppressMessage] on the method that reads a file
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class FileSuppressMessageReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        s = s with { Note = ReadSecret() };
        return s with { Count = s.Count + 1 };
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Hapnd", "HAPND001", Justification = "trust me")]
    private static string ReadSecret() => System.IO.File.ReadAllText("/etc/shadow");
}
