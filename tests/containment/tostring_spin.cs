// outcome: timeout
// why: once "Go" arms it, the state's ToString() and Equals() spin forever, and a public property getter calls ToString(), so serialization (or any logging/comparison) hangs.
using System;
using Hapnd.Projections.Contracts;

public sealed class TrapState
{
    public bool Armed { get; init; }
    public long Count { get; init; }

    // Serialized like any other property: it calls the spinning ToString().
    public string Display => ToString();

    public override string ToString()
    {
        if (!Armed)
        {
            return $"count={Count}";
        }

        Spin(Count);
        return "unreachable";
    }

    public override bool Equals(object? obj)
    {
        if (Armed)
        {
            Spin(Count);
        }

        return obj is TrapState other && other.Count == Count && other.Armed == Armed;
    }

    public override int GetHashCode() => 1;

    private static void Spin(long seed)
    {
        var x = seed | 1;
        while (x != 0)
        {
            x = unchecked(x * 6364136223846793005L + 1) | 1;
        }
    }
}

public class ToStringSpinReducer : IReducer<TrapState>
{
    public TrapState Apply(TrapState? state, Event @event) => new()
    {
        Count = (state?.Count ?? 0) + 1,
        Armed = (state?.Armed ?? false) || @event.Type == "Go",
    };
}
