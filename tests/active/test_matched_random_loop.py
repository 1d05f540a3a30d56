"""matched_random in the loop (the fake trainer): the images labeled at each step have the box
counts of the inner strategy's picks, under an image, a box and a seconds budget."""
from collections import Counter

import pytest


@pytest.mark.slow
def test_in_the_loop_the_picks_have_the_inner_strategys_counts(fake_loop):
    for budget in (dict(images=5), dict(boxes=20), dict(seconds=120)):
        ledger = fake_loop(f'run_{next(iter(budget))}',
                           strategy=dict(type='matched_random', strategy='fake_by_id'),
                           budget=budget).run()
        boxes = {i: r['num_boxes'] for i, r in ledger.images.items()}
        for step in (0, 1):
            info = ledger.steps[step]['strategy_info']
            picked = ledger.selected_at(step + 1)
            assert info['not_exact'] == 0
            assert Counter(boxes[i] for i in picked) == Counter(info['inner_pick_boxes'])
            assert [boxes[i] for i in info['inner_picks']] == info['inner_pick_boxes']
