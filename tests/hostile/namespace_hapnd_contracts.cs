// expect: HAPND005 Hapnd.Projections.Contracts
// why: declares a type inside the platform's own contracts namespace to impersonate or shadow host types
using System;
using System.Collections.Generic;
using System.Linq;

namespace Hapnd.Projections.Contracts
{
    public record AttackState(int Count, string Note);

    public class NamespaceHapndContractsReducer : IReducer<AttackState>
    {
        public AttackState Apply(AttackState? state, Event @event)
        {
            var s = state ?? new AttackState(0, "");
            return s with { Count = s.Count + 1 };
        }
    }
}
