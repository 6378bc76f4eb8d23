// expect: HAPND005 System
// why: declares a type in namespace System so that name-based allowlist checks mistake it for a trusted framework type
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

namespace System
{
    public static class TrustedHelpers
    {
        public static string Shout(string text) => text.ToUpperInvariant();
    }
}

public record AttackState(int Count, string Note);

public class NamespaceSystemReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        return s with { Count = s.Count + 1, Note = System.TrustedHelpers.Shout(@event.Type) };
    }
}
