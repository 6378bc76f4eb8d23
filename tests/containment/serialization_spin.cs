// outcome: timeout
// why: Apply returns normally on "Go", but the state's public property getter loops forever, so serializing it hangs.
using System;
using Hapnd.Projections.Contracts;

public record ArmedState
{
    public bool Armed { get; init; }
    public long Count { get; init; }

    // Read by the JSON serializer: harmless until armed, then it never returns.
    public long Checksum
    {
        get
        {
            if (!Armed)
            {
                return Count;
            }

            var x = Count | 1;
            while (x != 0)
            {
                x = unchecked(x * 6364136223846793005L + 1) | 1;
            }

            return x;
        }
    }
}

public class SerializationSpinReducer : IReducer<ArmedState>
{
    public ArmedState Apply(ArmedState? state, Event @event)
    {
        var s = state ?? new ArmedState();
        return s with { Count = s.Count + 1, Armed = s.Armed || @event.Type == "Go" };
    }
}
