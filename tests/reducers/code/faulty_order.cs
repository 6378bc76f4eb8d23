// The OrderReducer with three ways to fail, each on its own event type: "Explode" throws, "Spin" loops
// forever, "Hoard" allocates without bound. Every other event is handled as tests/legit/order_reducer.cs does, so
// after a refused append the next one shows whether the failed event left anything behind.
using System;
using System.Collections.Generic;
using Hapnd.Projections.Contracts;

public record OrderState
{
    public string? CustomerId { get; init; }
    public decimal Total { get; init; }
}

public record OrderPlacedData(string CustomerId);

public record ItemAddedData(string Item, decimal Price);

public class FaultyOrderReducer : IReducer<OrderState>
{
    public OrderState Apply(OrderState? state, Event @event)
    {
        state ??= new OrderState();
        return @event.Type switch
        {
            "OrderPlaced" => state with { CustomerId = @event.GetData<OrderPlacedData>().CustomerId },
            "ItemAdded" => state with { Total = state.Total + @event.GetData<ItemAddedData>().Price },
            "Explode" => throw new InvalidOperationException("explode on purpose"),
            "Spin" => Spin(state),
            "Hoard" => Hoard(state),
            _ => state,
        };
    }

    private static OrderState Spin(OrderState state)
    {
        var x = 17L;
        var i = 0L;
        while (true)
        {
            // Real work that depends on the previous iteration, so nothing can be folded away.
            x = unchecked(x * 6364136223846793005L + 1442695040888963407L);
            x ^= x >> 29;
            i++;
            if (x == long.MinValue && i < 0)
            {
                return state with { Total = i };
            }
        }
    }

    private static OrderState Hoard(OrderState state)
    {
        var hoard = new List<long[]>();
        while (true)
        {
            var chunk = new long[1_000_000];
            // Touch every page so the memory is really committed, not just reserved.
            for (var i = 0; i < chunk.Length; i += 512)
            {
                chunk[i] = i + hoard.Count;
            }

            hoard.Add(chunk);
            if (hoard.Count < 0)
            {
                return state with { Total = hoard.Count };
            }
        }
    }
}
